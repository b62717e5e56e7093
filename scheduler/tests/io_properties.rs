//! Integration tests for the io-properties reader and writer
//! (format: shared/reference/io-properties.md).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use scheduler::io_properties::{DiskProperties, IoProperties, PropertiesError, PropertiesWarning};

/// The sample from the spec, byte for byte.
const SAMPLE: &str = "\
disks:
  - mountpoint: /var/lib/scylla
    read_iops: 314742
    read_bandwidth: 3089104896
    write_iops: 91662
    write_bandwidth: 1764753408
";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/yaml")
        .join(name)
}

fn sample_disk() -> DiskProperties {
    DiskProperties::new("/var/lib/scylla", 314742, 3089104896, 91662, 1764753408)
}

fn parse(text: &str) -> IoProperties {
    let (props, warnings) = IoProperties::parse(text, "test.yaml").expect("should parse");
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    props
}

/// Parses `text` expecting an error; returns its message after checking it names the source.
fn parse_err(text: &str) -> String {
    let err = IoProperties::parse(text, "bad.yaml").expect_err("should be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("bad.yaml"),
        "message does not name the source: {msg}"
    );
    msg
}

/// One entry with the given extra lines after the mountpoint.
fn entry_with(lines: &str) -> String {
    format!("disks:\n  - mountpoint: /mnt\n{lines}")
}

const RATES: &str =
    "    read_iops: 100\n    read_bandwidth: 200\n    write_iops: 300\n    write_bandwidth: 400\n";

// ----------------------------------------------------------------------------------- writer

#[test]
fn writer_matches_reference_sample_exactly() {
    let props = IoProperties {
        disks: vec![sample_disk()],
    };
    assert_eq!(props.to_yaml(), SAMPLE);
}

#[test]
fn writer_emits_optional_keys_in_order_after_rates() {
    let mut disk = DiskProperties::new("/data", 1, 2, 3, 4);
    disk.read_saturation_length = Some(131072);
    disk.write_saturation_length = Some(65536);
    disk.physical_block_size = Some(4096);
    disk.duplex = true;
    disk.rate_factor = Some(0.5);
    let yaml = IoProperties { disks: vec![disk] }.to_yaml();
    assert_eq!(
        yaml,
        "disks:\n  - mountpoint: /data\n    read_iops: 1\n    read_bandwidth: 2\n    write_iops: 3\n    \
         write_bandwidth: 4\n    read_saturation_length: 131072\n    write_saturation_length: 65536\n    \
         physical_block_size: 4096\n    duplex: true\n"
    );
}

#[test]
fn writer_emits_several_mountpoints_as_block_list() {
    let mut disk = DiskProperties::new("/a", 1, 2, 3, 4);
    disk.mountpoints.push("/b".into());
    let props = IoProperties { disks: vec![disk] };
    let yaml = props.to_yaml();
    assert!(
        yaml.starts_with("disks:\n  - mountpoints:\n      - /a\n      - /b\n    read_iops: 1\n"),
        "{yaml}"
    );
    assert_eq!(parse(&yaml), props);
}

#[test]
fn writer_quotes_unusual_paths_and_they_round_trip() {
    let props = IoProperties {
        disks: vec![DiskProperties::new("/mnt/my disk: \"x\" #1", 1, 2, 3, 4)],
    };
    assert_eq!(parse(&props.to_yaml()), props);
}

#[test]
fn round_trip_with_optional_keys() {
    let mut a = sample_disk();
    a.read_saturation_length = Some(1 << 20);
    a.physical_block_size = Some(4096);
    let mut b = DiskProperties::new("/srv", u64::MAX, 1, 7, 1 << 40);
    b.write_saturation_length = Some(512);
    b.duplex = true;
    let props = IoProperties { disks: vec![a, b] };
    assert_eq!(parse(&props.to_yaml()), props);
}

fn disk_strategy(index: usize) -> impl Strategy<Value = DiskProperties> {
    let rate = 1..=u64::MAX;
    let opt = proptest::option::of(1..=u64::MAX);
    (
        1..4usize,
        (rate.clone(), rate.clone(), rate.clone(), rate),
        (opt.clone(), opt.clone(), opt),
        any::<bool>(),
    )
        .prop_map(
            move |(n, (ri, rb, wi, wb), (rs, ws, pbs), duplex)| DiskProperties {
                mountpoints: (0..n)
                    .map(|m| PathBuf::from(format!("/mnt/d{index}/m{m}")))
                    .collect(),
                read_iops: ri,
                read_bandwidth: rb,
                write_iops: wi,
                write_bandwidth: wb,
                read_saturation_length: rs,
                write_saturation_length: ws,
                physical_block_size: pbs,
                duplex,
                rate_factor: None,
            },
        )
}

fn props_strategy() -> impl Strategy<Value = IoProperties> {
    (0..4usize)
        .prop_flat_map(|n| (0..n).map(disk_strategy).collect::<Vec<_>>())
        .prop_map(|disks| IoProperties { disks })
}

proptest! {
    #[test]
    fn proptest_round_trip(props in props_strategy()) {
        let (back, warnings) = IoProperties::parse(&props.to_yaml(), "prop").unwrap();
        prop_assert!(warnings.is_empty());
        prop_assert_eq!(back, props);
    }
}

// ----------------------------------------------------------------------------------- reader

#[test]
fn fixture_seastar_sample_parses() {
    let path = fixture("seastar-sample.yaml");
    let (props, warnings) = IoProperties::from_file(&path).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(
        props,
        IoProperties {
            disks: vec![sample_disk()]
        }
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SAMPLE);
}

#[test]
fn reads_mountpoints_list() {
    let props = parse(&format!("disks:\n  - mountpoints: [/a, /b]\n{RATES}"));
    assert_eq!(
        props.disks[0].mountpoints,
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );
}

#[test]
fn reads_suffixes_and_quoted_integers() {
    let props = parse(&entry_with(
        "    read_iops: 545M\n    read_bandwidth: 1Gi\n    write_iops: \"2KiB\"\n    write_bandwidth: 3T\n    \
         read_saturation_length: 64kB\n    write_saturation_length: '4096'\n    physical_block_size: 4K\n",
    ));
    let d = &props.disks[0];
    assert_eq!(
        (
            d.read_iops,
            d.read_bandwidth,
            d.write_iops,
            d.write_bandwidth
        ),
        (545 << 20, 1 << 30, 2 << 10, 3 << 40)
    );
    assert_eq!(d.read_saturation_length, Some(64 << 10));
    assert_eq!(d.write_saturation_length, Some(4096));
    assert_eq!(d.physical_block_size, Some(4096));
    assert!(!d.duplex);
    assert_eq!(d.rate_factor, None);
}

#[test]
fn reads_duplex() {
    assert!(parse(&entry_with(&format!("{RATES}    duplex: true\n"))).disks[0].duplex);
    assert!(!parse(&entry_with(&format!("{RATES}    duplex: false\n"))).disks[0].duplex);
    let msg = parse_err(&entry_with(&format!("{RATES}    duplex: 3\n")));
    assert!(msg.contains("disks[0].duplex"), "{msg}");
}

#[test]
fn rate_factor_is_applied_in_f32() {
    let props = parse(&entry_with(
        "    read_iops: 1000000007\n    read_bandwidth: 200\n    write_iops: 300\n    write_bandwidth: 400\n    rate_factor: 1.0\n",
    ));
    let d = &props.disks[0];
    assert_eq!(d.read_iops, 1_000_000_000);
    assert_eq!(d.rate_factor, Some(1.0));
    let halved = parse(&entry_with(&format!("{RATES}    rate_factor: 0.5\n")));
    let d = &halved.disks[0];
    assert_eq!(
        (
            d.read_iops,
            d.read_bandwidth,
            d.write_iops,
            d.write_bandwidth
        ),
        (50, 100, 150, 200)
    );
    // Without rate_factor, rates are exact.
    assert_eq!(
        parse(&entry_with("    read_iops: 1000000007\n    read_bandwidth: 2\n    write_iops: 3\n    write_bandwidth: 4\n"))
            .disks[0]
            .read_iops,
        1_000_000_007
    );
}

#[test]
fn rejects_bad_rate_factor() {
    for bad in ["0", "-1", ".inf", ".nan", "1e300", "abc"] {
        let msg = parse_err(&entry_with(&format!("{RATES}    rate_factor: {bad}\n")));
        assert!(msg.contains("disks[0].rate_factor"), "{bad}: {msg}");
    }
    let msg = parse_err(&entry_with(&format!("{RATES}    rate_factor: 0.001\n")));
    assert!(
        msg.contains("disks[0].read_iops") && msg.contains("zero"),
        "{msg}"
    );
}

#[test]
fn unknown_key_is_a_warning() {
    let (props, warnings) =
        IoProperties::parse(&entry_with(&format!("{RATES}    read_iopz: 5\n")), "w.yaml").unwrap();
    assert_eq!(props.disks.len(), 1);
    assert_eq!(
        warnings,
        [PropertiesWarning::UnknownKey {
            source: "w.yaml".into(),
            entry: 0,
            key: "read_iopz".into()
        }]
    );
    let msg = warnings[0].to_string();
    assert!(
        msg.contains("w.yaml") && msg.contains("read_iopz") && msg.contains("ignored"),
        "{msg}"
    );
}

#[test]
fn empty_disks_list_is_accepted() {
    assert_eq!(parse("disks: []\n"), IoProperties::default());
    assert_eq!(parse("{}\n"), IoProperties::default());
}

// ----------------------------------------------------------------------------------- rejections

#[test]
fn rejects_zero_rate() {
    let msg = parse_err(&entry_with(
        "    read_iops: 100\n    read_bandwidth: 0\n    write_iops: 300\n    write_bandwidth: 400\n",
    ));
    assert!(
        msg.contains("disks[0].read_bandwidth") && msg.contains("zero"),
        "{msg}"
    );
}

#[test]
fn rejects_missing_rate() {
    let text = format!(
        "{SAMPLE}  - mountpoint: /b\n    read_iops: 1\n    read_bandwidth: 2\n    write_iops: 3\n"
    );
    let err = IoProperties::parse(&text, "bad.yaml").unwrap_err();
    assert!(
        matches!(
            err,
            PropertiesError::MissingField {
                entry: 1,
                field: "write_bandwidth",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("bad.yaml") && msg.contains("disks[1]") && msg.contains("write_bandwidth"),
        "{msg}"
    );
}

#[test]
fn rejects_duplicate_mountpoint_across_entries() {
    let text = format!("{SAMPLE}{}", &SAMPLE["disks:\n".len()..]);
    let msg = parse_err(&text);
    assert!(
        msg.contains("/var/lib/scylla") && msg.contains("disks[1]") && msg.contains("disks[0]"),
        "{msg}"
    );
}

#[test]
fn rejects_duplicate_mountpoint_within_entry() {
    let msg = parse_err(&format!("disks:\n  - mountpoints: [/a, /b, /a/]\n{RATES}"));
    assert!(msg.contains("/a") && msg.contains("twice"), "{msg}");
}

#[test]
fn rejects_missing_or_both_mountpoint_forms() {
    let msg = parse_err("disks:\n  - read_iops: 1\n    read_bandwidth: 2\n    write_iops: 3\n    write_bandwidth: 4\n");
    assert!(
        msg.contains("disks[0]") && msg.contains("mountpoint"),
        "{msg}"
    );
    let msg = parse_err(&format!(
        "disks:\n  - mountpoint: /a\n    mountpoints: [/b]\n{RATES}"
    ));
    assert!(
        msg.contains("disks[0]") && msg.contains("mountpoints"),
        "{msg}"
    );
    let msg = parse_err(&format!("disks:\n  - mountpoints: []\n{RATES}"));
    assert!(msg.contains("disks[0].mountpoints"), "{msg}");
}

#[test]
fn rejects_unknown_section() {
    let msg = parse_err(&format!("{SAMPLE}cpus:\n  - 1\n"));
    assert!(msg.contains("`cpus`"), "{msg}");
}

#[test]
fn rejects_bad_suffix() {
    let msg = parse_err(&entry_with(
        "    read_iops: 12X\n    read_bandwidth: 200\n    write_iops: 300\n    write_bandwidth: 400\n",
    ));
    assert!(
        msg.contains("disks[0].read_iops") && msg.contains("12X"),
        "{msg}"
    );
}

#[test]
fn rejects_non_integer() {
    for bad in ["1.5", "\"1.5\"", "1e3", "-5"] {
        let msg = parse_err(&entry_with(&format!(
            "    read_iops: 100\n    read_bandwidth: 200\n    write_iops: {bad}\n    write_bandwidth: 400\n"
        )));
        assert!(msg.contains("disks[0].write_iops"), "{bad}: {msg}");
    }
    let msg = parse_err(&entry_with(&format!(
        "{RATES}    physical_block_size: 1.5\n"
    )));
    assert!(
        msg.contains("physical_block_size") && msg.contains("1.5") && msg.contains("integer"),
        "{msg}"
    );
}

#[test]
fn rejects_malformed_yaml_with_location() {
    let err = IoProperties::parse("disks:\n  - mountpoint: /a\n   read_iops: [1\n", "bad.yaml")
        .unwrap_err();
    assert!(
        matches!(err, PropertiesError::Yaml { line: Some(_), .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("bad.yaml:") && msg.contains("malformed YAML"),
        "{msg}"
    );
}

#[test]
fn rejects_top_level_list_and_empty_document() {
    let msg = parse_err("- disks\n");
    assert!(msg.contains("top level") && msg.contains("a list"), "{msg}");
    let msg = parse_err("");
    assert!(msg.contains("top level"), "{msg}");
}

#[test]
fn rejects_wrong_shapes() {
    let msg = parse_err("disks: /a\n");
    assert!(
        msg.contains("bad.yaml: disks:") && msg.contains("list"),
        "{msg}"
    );
    let msg = parse_err("disks:\n  - /a\n");
    assert!(msg.contains("disks[0]"), "{msg}");
}

#[test]
fn from_file_error_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.yaml");
    let err = IoProperties::from_file(&path).unwrap_err();
    assert!(matches!(err, PropertiesError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.yaml"));
    assert!(std::error::Error::source(&err).is_some());

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "disks:\n  - mountpoint: /a\n    read_iops: 0\n").unwrap();
    let msg = IoProperties::from_file(&bad).unwrap_err().to_string();
    assert!(msg.contains(&*bad.display().to_string()), "{msg}");
}

// ----------------------------------------------------------------------------------- atomic write

#[cfg(feature = "harness")]
#[test]
fn write_atomically_leaves_only_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("io_properties.yaml");
    std::fs::write(&path, "old contents").unwrap();
    let props = IoProperties {
        disks: vec![sample_disk()],
    };
    props.write_atomically(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SAMPLE);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["io_properties.yaml"]);
    assert_eq!(IoProperties::from_file(&path).unwrap().0, props);
}

#[cfg(feature = "harness")]
#[test]
fn write_atomically_fails_cleanly_in_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("io_properties.yaml");
    let err = IoProperties {
        disks: vec![sample_disk()],
    }
    .write_atomically(&path)
    .unwrap_err();
    assert!(matches!(err, PropertiesError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ----------------------------------------------------------------------------------- disk_for

#[test]
fn disk_for_picks_longest_component_prefix() {
    let props = IoProperties {
        disks: vec![
            DiskProperties::new("/var", 1, 1, 1, 1),
            DiskProperties::new("/var/lib", 2, 2, 2, 2),
            DiskProperties::new("/va", 3, 3, 3, 3),
        ],
    };
    assert_eq!(
        props.disk_for(Path::new("/var/lib/x")).map(|d| d.read_iops),
        Some(2)
    );
    assert_eq!(
        props.disk_for(Path::new("/var/lib")).map(|d| d.read_iops),
        Some(2)
    );
    assert_eq!(
        props.disk_for(Path::new("/var/log")).map(|d| d.read_iops),
        Some(1)
    );
    assert_eq!(
        props.disk_for(Path::new("/va/x")).map(|d| d.read_iops),
        Some(3)
    );
    assert!(props.disk_for(Path::new("/srv")).is_none());

    let only_va = IoProperties {
        disks: vec![DiskProperties::new("/va", 3, 3, 3, 3)],
    };
    assert!(only_va.disk_for(Path::new("/var/lib/x")).is_none());
}

#[test]
fn disk_for_considers_every_mountpoint_of_an_entry() {
    let mut shared = DiskProperties::new("/a", 1, 1, 1, 1);
    shared.mountpoints.push("/b/c".into());
    let props = IoProperties {
        disks: vec![DiskProperties::new("/b", 2, 2, 2, 2), shared],
    };
    assert_eq!(
        props.disk_for(Path::new("/b/c/d")).map(|d| d.read_iops),
        Some(1)
    );
    assert_eq!(
        props.disk_for(Path::new("/b/x")).map(|d| d.read_iops),
        Some(2)
    );
    assert!(IoProperties::default().disk_for(Path::new("/")).is_none());
}

#[test]
fn empty_properties_round_trip() {
    let empty = IoProperties::default();
    assert_eq!(empty.to_yaml(), "disks: []\n");
    assert_eq!(parse(&empty.to_yaml()), empty);
}

// ----------------------------------------------------------------------------------- size and time

/// `n` disks, one mountpoint each.
fn many_disks(n: usize) -> String {
    let mut text = String::from("disks:\n");
    for i in 0..n {
        text.push_str(&format!("  - mountpoint: /mnt/d{i}\n{RATES}"));
    }
    text
}

/// Loading is linear: 50000 disks (3.5 MB) took minutes when each mountpoint was compared with
/// every earlier one, and take well under a second now. The bound is 50 times that, for a
/// loaded machine.
#[test]
fn many_disks_load_in_linear_time() {
    let text = many_disks(50_000);
    let t = std::time::Instant::now();
    let props = parse(&text);
    assert_eq!(props.disks.len(), 50_000);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    // A repeat at the very end is still found, naming both entries.
    let dup = format!("{text}  - mountpoint: /mnt/d7/\n{RATES}");
    let msg = parse_err(&dup);
    assert!(
        msg.contains("disks[50000]: mountpoint /mnt/d7/ is listed twice (first in disks[7])"),
        "{msg}"
    );
}

#[test]
fn oversized_text_and_file_are_refused_before_parsing() {
    let limit = scheduler::io_properties::MAX_FILE_BYTES;
    let text = " ".repeat(limit + 1);
    let err = IoProperties::parse(&text, "big.yaml").unwrap_err();
    assert!(matches!(err, PropertiesError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "big.yaml: the file has 16777217 bytes (16.0 MiB), more than the 16 MiB limit; \
         io-properties are a few lines per disk: check that this is the right file"
    );
    // A sparse 50 MB file is judged by its size, not read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(50 << 20).unwrap();
    let err = IoProperties::from_file(&path).unwrap_err();
    assert!(
        matches!(err, PropertiesError::TooLarge { size: Some(s), .. } if s == 50 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("huge.yaml"), "{err}");
}

#[test]
fn a_set_stop_flag_interrupts_parsing() {
    let stop = std::sync::atomic::AtomicBool::new(true);
    let err = IoProperties::parse_with_stop(&many_disks(2000), "s.yaml", Some(&stop)).unwrap_err();
    assert!(
        matches!(err, PropertiesError::Interrupted { .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "s.yaml: reading was interrupted");
}

#[test]
fn control_characters_are_escaped_in_messages() {
    let msg = parse_err(&entry_with(
        "    read_iops: \"1\\u001b[31mK\"\n    read_bandwidth: 2\n    write_iops: 3\n    write_bandwidth: 4\n",
    ));
    assert!(!msg.contains('\u{1b}'), "{msg:?}");
    assert!(msg.contains("1\\u{1b}[31mK"), "{msg}");
    let msg = parse_err(&format!(
        "disks:\n  - mountpoints: [\"/a\\u0000\", \"/a\\u0000\"]\n{RATES}"
    ));
    assert!(!msg.contains('\0') && msg.contains("/a\\u{0}"), "{msg:?}");
}

/// Inputs the `io_properties` fuzz target (`fuzz/`) reported: no panic, read quickly, and
/// what is accepted is written back to the same disks.
#[test]
fn fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/io_properties");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) else {
            continue;
        };
        let t = std::time::Instant::now();
        let parsed = IoProperties::parse(&text, "fuzz.yaml");
        assert!(
            t.elapsed() < std::time::Duration::from_millis(500),
            "{}: {:?}",
            path.display(),
            t.elapsed()
        );
        if let Ok((props, _)) = parsed {
            let (back, _) = IoProperties::parse(&props.to_yaml(), "written.yaml").unwrap();
            let mut expected = props;
            for disk in &mut expected.disks {
                disk.rate_factor = None;
            }
            assert_eq!(back, expected, "{}", path.display());
        }
    }
}
