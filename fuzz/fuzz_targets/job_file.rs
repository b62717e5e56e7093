//! Job-file reader: no input may panic or take long; messages carry no raw control
//! character; what it accepts goes through everything a run does before starting.
#![no_main]

use io_tester::workload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let jobs = match workload::parse_jobs(text, "fuzz.yaml") {
        Ok(jobs) => jobs,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains(char::is_control), "{msg:?}");
            return;
        }
    };
    if let Err(e) = workload::check_job_classes(&jobs, None, "fuzz.yaml") {
        let msg = e.to_string();
        assert!(!msg.contains(char::is_control), "{msg:?}");
    }
    for smp in [1, 2, 64] {
        let _ = workload::check_shards(&jobs, smp, "fuzz.yaml");
        for job in &jobs {
            let _ = workload::per_shard_data_size(job, smp);
        }
    }
    let json = serde_json::to_string(&jobs).expect("jobs serialize");
    assert!(!json.is_empty());
});
