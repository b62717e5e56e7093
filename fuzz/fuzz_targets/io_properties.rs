//! io-properties reader: no input may panic or take long; what it accepts, the writer writes
//! back to the same disks (rates include `rate_factor`, which is not written).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scheduler::io_properties::IoProperties;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((props, _warnings)) = IoProperties::parse(text, "fuzz.yaml") else {
        return;
    };
    let written = props.to_yaml();
    let (back, warnings) = match IoProperties::parse(&written, "written.yaml") {
        Ok(back) => back,
        Err(e) => panic!("the writer's output does not read back: {e}\n{written}"),
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut expected = props;
    for disk in &mut expected.disks {
        disk.rate_factor = None;
    }
    assert_eq!(back, expected, "{written}");
});
