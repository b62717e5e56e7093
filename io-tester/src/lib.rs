//! io-tester's job-file and scheduling-group readers, as a library: the binary uses them, and
//! so do the fuzz targets (`fuzz/`).

pub mod workload;
