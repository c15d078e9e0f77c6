use super::*;
use serde_json::json;
use std::path::PathBuf;

const IMAGE: &str = "openwrt-1.2.3-abcdefabcdef-t-s-p-squashfs-sysupgrade.bin";
const KERNEL: &str = "openwrt-1.2.3-abcdefabcdef-t-s-p-kernel.bin";
const PREFIX: &str = "openwrt-1.2.3-abcdefabcdef-t-s-p";

fn sha(data: &[u8]) -> String {
    crate::store::sha256_of(&mut &data[..]).unwrap().0
}

/// A build directory as an ImageBuilder leaves BIN_DIR.
fn build_dir(root: &Path) -> PathBuf {
    let dir = root.join("b");
    std::fs::create_dir_all(&dir).unwrap();
    let image = b"IMAGE BYTES".repeat(1000);
    let kernel = b"KERNEL".to_vec();
    std::fs::write(dir.join(IMAGE), &image).unwrap();
    std::fs::write(dir.join(KERNEL), &kernel).unwrap();
    std::fs::write(
        dir.join(format!("{PREFIX}.manifest")),
        "busybox - 1.36.1-1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("sha256sums"),
        format!("{} *{IMAGE}\n{} *{KERNEL}\n", sha(&image), sha(&kernel)),
    )
    .unwrap();
    let profiles = json!({
        "default_packages": ["busybox"],
        "profiles": {"p": {
            "device_packages": [],
            "image_prefix": PREFIX,
            "images": [
                {"name": IMAGE, "sha256": sha(&image), "sha256_unsigned": sha(&image), "type": "sysupgrade"},
                {"name": KERNEL, "sha256": sha(&kernel).to_uppercase(), "type": "kernel"}
            ],
            "titles": [{"title": "P"}]
        }},
        "target": "t/s",
        "version_code": "r1-abc",
        "version_number": "1.2.3"
    });
    std::fs::write(dir.join("profiles.json"), profiles.to_string()).unwrap();
    dir
}

fn expect() -> Expect<'static> {
    Expect {
        target: "t/s",
        version: "1.2.3",
        version_code: "",
        profile: "p",
    }
}

fn refusal(dir: &Path, expect: &Expect<'_>) -> Incomplete {
    check(dir, expect).unwrap_err().reason
}

fn edit_profiles(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("profiles.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn a_complete_build_is_recognised_with_what_was_read() {
    let root = tempfile::tempdir().unwrap();
    let dir = build_dir(root.path());
    let c = check(&dir, &expect()).unwrap();
    assert_eq!(c.images.len(), 2);
    assert_eq!(c.images[0].name, IMAGE);
    assert_eq!(c.seen.hashed_bytes, 11_000 + 6);
    assert_eq!(c.manifest, "busybox - 1.36.1-1\n");
    assert_eq!(c.profiles["target"], "t/s");
    // The revision is checked only when the request names one.
    let mut e = expect();
    e.version_code = "r1-abc";
    assert!(check(&dir, &e).is_ok());
    // Nothing changed: a stat says so without hashing again.
    assert!(unchanged(&dir, &c.seen));
    assert!(c.seen.newest_change() > 0);
    std::fs::write(dir.join("new-file"), "x").unwrap();
    assert!(!unchanged(&dir, &c.seen), "an added entry is a change");
}

#[test]
fn a_file_rewritten_in_place_is_a_change() {
    let root = tempfile::tempdir().unwrap();
    let dir = build_dir(root.path());
    let c = check(&dir, &expect()).unwrap();
    let mut data = std::fs::read(dir.join(IMAGE)).unwrap();
    data.extend_from_slice(b"signature");
    std::fs::write(dir.join(IMAGE), data).unwrap();
    assert!(!unchanged(&dir, &c.seen));
    assert_eq!(refusal(&dir, &expect()), Incomplete::Checksum(IMAGE.into()));
}

#[test]
fn each_way_of_being_incomplete_is_named() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        refusal(&root.path().join("none"), &expect()),
        Incomplete::Missing
    );
    std::fs::write(root.path().join("file"), "x").unwrap();
    assert_eq!(
        refusal(&root.path().join("file"), &expect()),
        Incomplete::NotADirectory
    );
    // The reference creates the directory before its build starts.
    std::fs::create_dir(root.path().join("empty")).unwrap();
    assert_eq!(
        refusal(&root.path().join("empty"), &expect()),
        Incomplete::NoProfilesJson
    );

    type Spoil = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Spoil, Incomplete)> = vec![
        (
            "missing image",
            Box::new(|d| std::fs::remove_file(d.join(IMAGE)).unwrap()),
            Incomplete::ImageMissing(IMAGE.into()),
        ),
        (
            "short image",
            Box::new(|d| {
                let data = std::fs::read(d.join(IMAGE)).unwrap();
                std::fs::write(d.join(IMAGE), &data[..data.len() / 2]).unwrap();
            }),
            Incomplete::Checksum(IMAGE.into()),
        ),
        (
            "wrong sha256",
            Box::new(|d| {
                edit_profiles(d, |v| {
                    v["profiles"]["p"]["images"][0]["sha256"] = json!("ab".repeat(32))
                })
            }),
            // sha256sums still names the right one.
            Incomplete::SumsDisagree(IMAGE.into()),
        ),
        (
            "wrong sha256 without sha256sums",
            Box::new(|d| {
                std::fs::remove_file(d.join("sha256sums")).unwrap();
                edit_profiles(d, |v| {
                    v["profiles"]["p"]["images"][1]["sha256"] = json!("ab".repeat(32))
                })
            }),
            Incomplete::Checksum(KERNEL.into()),
        ),
        (
            "other profile",
            Box::new(|d| {
                edit_profiles(d, |v| {
                    let p = v["profiles"]["p"].take();
                    v["profiles"] = json!({"q": p});
                })
            }),
            Incomplete::NoProfile("p".into()),
        ),
        (
            "other version",
            Box::new(|d| edit_profiles(d, |v| v["version_number"] = json!("1.2.4"))),
            Incomplete::OtherVersion("1.2.4".into()),
        ),
        (
            "other target",
            Box::new(|d| edit_profiles(d, |v| v["target"] = json!("t/x"))),
            Incomplete::OtherTarget("t/x".into()),
        ),
        (
            "no images",
            Box::new(|d| edit_profiles(d, |v| v["profiles"]["p"]["images"] = json!([]))),
            Incomplete::NoImages,
        ),
        (
            "image outside the directory",
            Box::new(|d| {
                edit_profiles(d, |v| {
                    v["profiles"]["p"]["images"][0]["name"] = json!("../x.bin")
                })
            }),
            Incomplete::BadImageEntry("image name \"../x.bin\" is not a plain file name".into()),
        ),
        (
            "image is a symlink",
            Box::new(|d| {
                std::fs::rename(d.join(IMAGE), d.join("elsewhere")).unwrap();
                std::os::unix::fs::symlink(d.join("elsewhere"), d.join(IMAGE)).unwrap();
            }),
            Incomplete::NotAFile(IMAGE.into()),
        ),
        (
            "no manifest",
            Box::new(|d| std::fs::remove_file(d.join(format!("{PREFIX}.manifest"))).unwrap()),
            Incomplete::NoManifest,
        ),
        (
            "profiles.json cut short",
            Box::new(|d| std::fs::write(d.join("profiles.json"), "{\"target\": \"t/").unwrap()),
            Incomplete::BadProfilesJson(
                serde_json::from_str::<Map<String, Value>>("{\"target\": \"t/")
                    .unwrap_err()
                    .to_string(),
            ),
        ),
    ];
    for (what, spoil, want) in cases {
        let case = tempfile::tempdir().unwrap();
        let dir = build_dir(case.path());
        spoil(&dir);
        assert_eq!(refusal(&dir, &expect()), want, "{what}");
    }
    let root = tempfile::tempdir().unwrap();
    let dir = build_dir(root.path());
    let mut e = expect();
    e.version_code = "r2-def";
    assert_eq!(
        refusal(&dir, &e),
        Incomplete::OtherRevision("r1-abc".into())
    );
}

#[test]
fn the_only_manifest_is_used_when_the_prefix_names_none() {
    let root = tempfile::tempdir().unwrap();
    let dir = build_dir(root.path());
    std::fs::rename(
        dir.join(format!("{PREFIX}.manifest")),
        dir.join("openwrt-t-s.manifest"),
    )
    .unwrap();
    assert!(check(&dir, &expect()).is_ok());
    std::fs::write(dir.join("second.manifest"), "").unwrap();
    assert_eq!(refusal(&dir, &expect()), Incomplete::NoManifest);
}

#[test]
fn sums_lines_in_both_modes() {
    let a = "a".repeat(64);
    let b = "B".repeat(64);
    let sums = parse_sums(&format!("{a} *x.bin\n{b}  y bin\nnot a line\n{a}\n"));
    assert_eq!(sums.len(), 2);
    assert_eq!(sums["x.bin"], a);
    assert_eq!(sums["y bin"], "b".repeat(64));
}

#[test]
fn a_replacement_names_the_first_differing_image() {
    let img = |n: &str, s: &str| Image {
        name: n.into(),
        sha256: s.into(),
    };
    let old = [img("a", "1"), img("b", "2")];
    assert_eq!(replaced_image(&old, &[img("b", "2"), img("a", "1")]), None);
    assert_eq!(
        replaced_image(&old, &[img("a", "1"), img("b", "3")]),
        Some("b".into())
    );
    assert_eq!(replaced_image(&old, &[img("a", "1")]), Some("b".into()));
    assert_eq!(
        replaced_image(&old, &[img("a", "1"), img("b", "2"), img("c", "4")]),
        Some("c".into())
    );
}

#[test]
fn an_image_signed_after_the_imagebuilder_is_the_listed_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = build_dir(root.path());
    let original = std::fs::read(dir.join(IMAGE)).unwrap();
    let with_chunk = |sig: &[u8]| [original.clone(), fwtool::signature_chunk(sig)].concat();

    // Signed by the server: the listed image plus a signature chunk.
    let signed = with_chunk(b"server signature");
    std::fs::write(dir.join(IMAGE), &signed).unwrap();
    let c = check(&dir, &expect()).unwrap();
    assert_eq!(
        c.images[0].sha256,
        sha(&signed),
        "the served file's checksum"
    );

    // Signed by the ImageBuilder (sha256 covers its chunk, sha256_unsigned
    // does not), then re-signed by the server: the chunk was replaced.
    std::fs::remove_file(dir.join("sha256sums")).unwrap();
    let by_imagebuilder = with_chunk(b"imagebuilder signature");
    edit_profiles(&dir, |v| {
        v["profiles"]["p"]["images"][0]["sha256"] = json!(sha(&by_imagebuilder));
        v["profiles"]["p"]["images"][0]["sha256_unsigned"] = json!(sha(&original));
    });
    let resigned = with_chunk(b"server signature, longer than the other one");
    std::fs::write(dir.join(IMAGE), &resigned).unwrap();
    assert_eq!(
        check(&dir, &expect()).unwrap().images[0].sha256,
        sha(&resigned)
    );
    // Between fwtool's steps the image is the unsigned one: not listed.
    std::fs::write(dir.join(IMAGE), &original).unwrap();
    assert_eq!(refusal(&dir, &expect()), Incomplete::Checksum(IMAGE.into()));

    // Anything else appended is not a signature.
    let mut garbage = original.clone();
    garbage.extend_from_slice(&[0x5a; 40]);
    std::fs::write(dir.join(IMAGE), &garbage).unwrap();
    assert_eq!(refusal(&dir, &expect()), Incomplete::Checksum(IMAGE.into()));
}
