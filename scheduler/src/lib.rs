//! placeholder
pub mod io_properties;
pub mod topology;
