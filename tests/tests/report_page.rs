//! Issue 11: the `--html` page, the `--fio-jobs` files and the plausibility checks, on real
//! runs of the built iotune (tmpfs and the work disk). Where a tool is missing (Chromium,
//! fio) the check says so and skips that part; nothing else is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{disk_dir, run, Running};
use iotune::plausibility::Check;
use iotune::report::{Report, Status};

/// Short-run arguments: 4 s base duration, 2 shards, 128 MiB per shard, 1 s ramps.
fn quick(dir: &Path) -> Vec<String> {
    [
        "--evaluation-directory",
        dir.to_str().unwrap(),
        "--duration",
        "4",
        "--smp",
        "2",
        "--file-size",
        "128M",
        "--ramp-time",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Sets `option` to `value` in `args`, replacing its value there if any.
fn set(args: &mut Vec<String>, option: &str, value: &str) {
    match args.iter().position(|a| a == option) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([option.to_string(), value.to_string()]),
    }
}

/// One iotune run with `--report`, `--html` and `--fio-jobs` into a temp dir.
struct PageRun {
    out: Output,
    stderr: String,
    report: Report,
    page: String,
    html: PathBuf,
    fio: PathBuf,
    _dir: tempfile::TempDir,
}

fn run_with_page(args: &[String]) -> PageRun {
    let dir = tempfile::tempdir().unwrap();
    let (report, html, fio) = (
        dir.path().join("r.json"),
        dir.path().join("page.html"),
        dir.path().join("fio"),
    );
    std::fs::create_dir(&fio).unwrap();
    let out = run(e2e::iotune()
        .args(args)
        .arg("--report")
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .arg("--fio-jobs")
        .arg(&fio));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report = Report::load(&report).unwrap_or_else(|e| panic!("{e:#}\n{stderr}"));
    let page = std::fs::read_to_string(&html).unwrap_or_else(|e| panic!("no page ({e}): {stderr}"));
    PageRun {
        out,
        stderr,
        report,
        page,
        html,
        fio,
        _dir: dir,
    }
}

/// The page is whole, self-contained and has one inline SVG per measured phase and sweep.
fn check_page(label: &str, r: &PageRun) {
    let page = &r.page;
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    for banned in [
        "http://", "https://", "<script", "<link", "src=", "url(", "@import", "<iframe",
    ] {
        assert!(!page.contains(banned), "{label}: the page has {banned:?}");
    }
    let disk = &r.report.disks[0];
    let measured = disk.phases.iter().filter(|p| !p.dropped).count();
    assert!(measured >= 4, "{label}: {measured} measured phases");
    let svgs = page.matches("<svg").count();
    assert_eq!(
        svgs,
        measured + disk.depth_sweeps.len(),
        "{label}: one SVG per measured phase and sweep"
    );
    assert_eq!(page.matches("</svg>").count(), svgs);
    for phase in disk.phases.iter().filter(|p| !p.dropped) {
        assert!(
            page.contains(&format!(">{}</h3>", phase.name)),
            "{label}: {}",
            phase.name
        );
    }
    for text in [
        "iotune-rs calibration of",
        "Status: complete",
        "io-properties",
        "read_iops:",
        "second of the measured window (s)",
        "latency (µs, log scale)",
        r.report.command_line.last().unwrap().as_str(),
    ] {
        assert!(page.contains(text), "{label}: no {text:?} on the page");
    }
    if !disk.depth_sweeps.is_empty() {
        assert!(page.contains("requests in flight per shard") && page.contains("knee"));
    }
}

/// Headless Chromium's screenshot of the page is not blank: a good share of its pixels are
/// not background, in several colours. Skips (saying so) where Chromium is missing.
fn check_screenshot(label: &str, html: &Path) {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| e2e::have(c))
    else {
        println!("SKIPPED {label}: screenshot check: no chromium on this machine (`apt-get install chromium`; .ci/run installs it)");
        return;
    };
    let shot = html.with_extension("png");
    let out = run(Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,3000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display())));
    assert!(
        shot.exists(),
        "{label}: no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|&c| c < 200))
        .count();
    let coloured = pixels
        .iter()
        .filter(|p| p[2] as i32 - p[0] as i32 > 60 || p[0] as i32 - p[2] as i32 > 60)
        .count();
    println!(
        "{label}: screenshot {}x{}: {:.1}% of pixels inked, {:.2}% coloured",
        info.width,
        info.height,
        100.0 * inked as f64 / pixels.len() as f64,
        100.0 * coloured as f64 / pixels.len() as f64
    );
    assert!(
        inked * 100 > pixels.len(),
        "{label}: the screenshot is blank"
    );
    assert!(
        coloured * 1000 > pixels.len(),
        "{label}: no plot lines in the screenshot"
    );
}

/// One job per phase, each accepted by `fio --parse-only`, and the README.
fn check_fio_jobs(label: &str, r: &PageRun) -> Vec<PathBuf> {
    let mut jobs: Vec<PathBuf> = e2e::entries(&r.fio)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "fio"))
        .collect();
    jobs.sort();
    assert_eq!(
        jobs.len(),
        r.report.disks[0].phases.len(),
        "{label}: {jobs:?}"
    );
    let readme = std::fs::read_to_string(r.fio.join("README")).unwrap();
    assert!(readme.contains("fio --output-format=json"), "{readme}");
    if !e2e::have("fio") {
        println!("SKIPPED {label}: fio --parse-only: no fio on this machine (.ci/run installs it)");
        return jobs;
    }
    for job in &jobs {
        let out = run(Command::new("fio").arg("--parse-only").arg(job));
        assert!(
            out.status.success(),
            "{label}: fio refuses {}: {}\n{}",
            job.display(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(job).unwrap()
        );
    }
    jobs
}

#[test]
fn issue11_html_page_and_fio_jobs_on_tmpfs_and_the_work_disk() {
    let _serial = e2e::serial();
    let tmpfs = Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").unwrap());
    if tmpfs.is_none() {
        println!("SKIPPED tmpfs: /dev/shm does not exist on this machine");
    }
    let disk = disk_dir();
    let mut sweep = quick(disk.path());
    sweep.extend(["--depth-sweep", "read", "--random-read-io-depth", "4"].map(String::from));
    let runs = tmpfs
        .as_ref()
        .map(|t| ("tmpfs", t.path(), quick(t.path())))
        .into_iter()
        .chain([("work disk", disk.path(), sweep)]);
    for (label, eval, args) in runs {
        let r = run_with_page(&args);
        assert!(r.out.status.success(), "{label}: {}", r.stderr);
        assert_eq!(r.report.status, Status::Complete);
        check_page(label, &r);
        check_screenshot(label, &r.html);
        let jobs = check_fio_jobs(label, &r);
        if label == "work disk" {
            assert_eq!(r.report.disks[0].depth_sweeps.len(), 1);
            // A normal run on a real disk raises no plausibility warning; only a shard starved
            // of CPU by other work (the machine overloaded, as a shared one can be) may say so.
            assert!(
                r.report.plausibility.is_empty(),
                "{:?}",
                r.report.plausibility
            );
            let disk = &r.report.disks[0];
            for w in &disk.plausibility {
                let starved = w.check == Check::CpuBound
                    && disk
                        .phases
                        .iter()
                        .filter(|p| w.phase.as_ref() == Some(&p.name))
                        .flat_map(|p| &p.per_shard)
                        .any(|s| s.runqueue_wait_s > s.cpu_s);
                assert!(starved, "{label}: a normal run raised: {w}");
                println!("note: {label}: the machine was overloaded: {w}");
            }
        }
        if label == "tmpfs" && e2e::have("fio") {
            // One short real run: the random read job (1 s ramp, 1 s measured, 128 MiB files).
            let job = jobs
                .iter()
                .find(|j| j.to_string_lossy().contains("random-read"))
                .unwrap();
            let out = run(Command::new("fio").arg("--output-format=json").arg(job));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}\n{text}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value =
                serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
            let iops = json["jobs"][0]["read"]["iops"].as_f64().unwrap();
            println!(
                "{label}: fio {}: {iops:.0} IOPS; iotune {:.0}",
                job.display(),
                r.report.disks[0]
                    .results
                    .as_ref()
                    .unwrap()
                    .properties
                    .read_iops
            );
            assert!(iops > 100.0, "fio measured {iops} IOPS");
        }
        e2e::assert_empty(eval);
    }
}

#[test]
fn issue11_plausibility_warnings_are_triggered_on_purpose() {
    let _serial = e2e::serial();
    let disk = disk_dir();

    // More shards than CPUs (the sanity checks suffice to say so).
    let cpus = std::thread::available_parallelism().unwrap().get();
    let mut args = quick(disk.path());
    args.push("--fs-check".into());
    set(&mut args, "--smp", &(cpus + 1).to_string());
    let r = run_with_page(&args);
    assert!(r.out.status.success(), "{}", r.stderr);
    let w = &r.report.plausibility;
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].check, Check::MoreShardsThanCpus);
    assert!(
        r.stderr
            .contains(&format!("run with --smp {cpus} or fewer")),
        "{}",
        r.stderr
    );
    assert!(r.page.contains("More shards than CPUs") && r.page.contains("What to do:"));

    // A CPU-bound shard: one blocking thread per shard on tmpfs, where requests cost only CPU.
    if Path::new("/dev/shm").is_dir() {
        let tmpfs = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut args = quick(tmpfs.path());
        set(&mut args, "--smp", "1");
        args.extend(["--engine", "threads", "--force-io-depth", "1"].map(String::from));
        let r = run_with_page(&args);
        assert!(r.out.status.success(), "{}", r.stderr);
        let found = &r.report.disks[0].plausibility;
        let cpu: Vec<_> = found
            .iter()
            .filter(|w| w.check == Check::CpuBound)
            .collect();
        assert!(
            cpu.iter()
                .any(|w| w.phase.as_deref() == Some("random read 4096")),
            "{found:?}\n{}",
            r.stderr
        );
        assert!(r.stderr.contains("it was CPU-bound") && r.page.contains("CPU-bound shard"));
    } else {
        println!("SKIPPED CPU-bound: /dev/shm does not exist on this machine");
    }

    // A collapsed phase: sequential reads of 512 bytes, one at a time, against random 4 KiB
    // reads 64 deep per shard.
    let mut args = quick(disk.path());
    args.extend(
        [
            "--sequential-read-buffer-size",
            "512",
            "--sequential-read-io-depth",
            "1",
        ]
        .map(String::from),
    );
    let r = run_with_page(&args);
    assert!(r.out.status.success(), "{}", r.stderr);
    let found = &r.report.disks[0].plausibility;
    let collapsed: Vec<_> = found
        .iter()
        .filter(|w| w.check == Check::CollapsedPhase)
        .collect();
    assert_eq!(collapsed.len(), 1, "{found:?}");
    assert!(
        collapsed[0]
            .message
            .contains("so sequential read collapsed"),
        "{collapsed:?}"
    );
    assert!(r.page.contains("Collapsed phase"));

    // A deviation too high to trust: the process stopped for 3 of the sequential write's 7
    // measured seconds.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut args = quick(disk.path());
    set(&mut args, "--duration", "10");
    let mut child = Running::spawn(e2e::iotune().args(&args).arg("--report").arg(&report));
    assert!(
        child.wait_for_line("Starting Evaluation", Duration::from_secs(60)),
        "{}",
        child.stderr()
    );
    std::thread::sleep(Duration::from_secs(1));
    child.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    child.signal(libc::SIGCONT);
    let (status, _) = child
        .wait_exit(Duration::from_secs(120))
        .expect("iotune ends");
    assert!(status.success(), "{}", child.stderr());
    let r = Report::load(&report).unwrap();
    let found = &r.disks[0].plausibility;
    assert!(
        found
            .iter()
            .any(|w| w.check == Check::HighDeviation
                && w.phase.as_deref() == Some("sequential write")),
        "{found:?}\n{:?}",
        r.disks[0].phases[0].per_shard[0].samples
    );
    assert!(child.stderr().contains("too unsteady to trust"));
    e2e::assert_empty(disk.path());
}

#[test]
fn issue11_bad_page_paths_fail_before_measuring() {
    let eval = disk_dir();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let ro = tempfile::tempdir().unwrap();
    if !e2e::is_root() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let mut cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "--html",
            PathBuf::from("/nonexistent/iotune/page.html"),
            "does not exist",
        ),
        ("--html", scratch.path().to_path_buf(), "cannot be written"),
        (
            "--fio-jobs",
            PathBuf::from("/nonexistent/iotune/jobs"),
            "not an existing directory",
        ),
        ("--fio-jobs", file.clone(), "not an existing directory"),
    ];
    if !e2e::is_root() {
        // Root writes into a 0555 directory; the read-only case is issue 9's bind mount test.
        cases.push(("--html", ro.path().join("page.html"), "cannot be written"));
        cases.push(("--fio-jobs", ro.path().to_path_buf(), "cannot be written"));
    }
    for (option, target, why) in cases {
        let out = run(e2e::iotune()
            .args(quick(eval.path()))
            .arg(option)
            .arg(&target));
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{option} {target:?}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains(why),
            "{option}: {stderr}"
        );
        assert!(
            !stdout.contains("Warming up"),
            "{option} measured: {stdout}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        e2e::assert_empty(eval.path());
    }
    assert_eq!(e2e::entries(scratch.path()), [file]);
    assert!(e2e::entries(ro.path()).is_empty());
}
