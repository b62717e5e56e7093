//! iotune's report and what is derived from it, as a library: the JSON report's types (so the
//! end-to-end tests read it through them, and a schema change fails to compile there), the
//! plausibility checks, the fio job files and the HTML page. The measurement itself is the
//! `iotune` binary.

#![forbid(unsafe_code)]

pub mod fio_jobs;
pub mod html;
pub mod latency_model;
pub mod mixed_model;
pub mod plausibility;
pub mod report;
pub mod stats;
