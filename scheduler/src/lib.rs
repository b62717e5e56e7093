//! placeholder
#![deny(unsafe_code)]
#[allow(unsafe_code)]
pub mod engine;
pub mod io_properties;
pub mod topology;
