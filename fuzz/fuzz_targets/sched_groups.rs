//! Scheduling-group reader: no input may panic or take long; messages carry no raw control
//! character; the groups it accepts resolve jobs naming them.
#![no_main]

use io_tester::workload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let groups = match workload::parse_sched_groups(text, "fuzz.yaml") {
        Ok(groups) => groups,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains(char::is_control), "{msg:?}");
            return;
        }
    };
    // One job per group (the first 50), each joining it, one of them with shares.
    let mut jobs = String::new();
    for (i, g) in groups.iter().take(50).enumerate() {
        let class = serde_json::to_string(&g.name).expect("a string");
        let shares = if i == 0 { ", shares: 5" } else { "" };
        jobs.push_str(&format!(
            "- {{name: j{i}, type: randread, shards: all, shard_info: {{class: {class}{shares}}}}}\n"
        ));
    }
    let jobs = workload::parse_jobs(&jobs, "jobs.yaml").expect("generated jobs parse");
    if let Err(e) = workload::resolve_job_classes(&jobs, Some(&groups), "jobs.yaml") {
        let msg = e.to_string();
        assert!(!msg.contains(char::is_control), "{msg:?}");
    }
});
