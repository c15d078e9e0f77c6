//! Optional image signing with a build key, as the reference does: when
//! `build_key_path` names a usign secret key and its certificate
//! (`<key>.ucert`) sits next to it, the installable images are signed inside
//! the build container with the ImageBuilder's own host tools (fwtool,
//! usign, ucert) before they are copied out. Reading the key is this
//! module's only I/O.

use crate::container::FileToPut;
use std::path::{Path, PathBuf};

/// Where the key pair is placed inside the container (outside BIN_DIR, so
/// it is never copied into the store).
pub const KEY_DIR: &str = "/builder/.asu-sign";

/// PATH for the signing shell: the ImageBuilder's host tools come first.
const SIGN_PATH: &str =
    "/builder/staging_dir/host/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone)]
pub struct BuildKey {
    pub path: PathBuf,
    pub key: Vec<u8>,
    pub ucert: Vec<u8>,
}

/// The configured build key, when both files are readable; `None` means:
/// do not sign. A configured key that cannot be read is logged, and the
/// build goes on unsigned, as the reference does without a key.
pub fn find_build_key(configured: Option<&Path>) -> Option<BuildKey> {
    let path = configured?.to_path_buf();
    let mut ucert_path = path.clone().into_os_string();
    ucert_path.push(".ucert");
    match (std::fs::read(&path), std::fs::read(&ucert_path)) {
        (Ok(key), Ok(ucert)) => Some(BuildKey { path, key, ucert }),
        (Err(e), _) | (_, Err(e)) => {
            log::warn!(
                "build_key_path {}: the key or its .ucert is unreadable ({e}); not signing",
                path.display()
            );
            None
        }
    }
}

/// The key pair as files for `put_files(KEY_DIR, …)`.
pub fn key_files(key: &BuildKey) -> Vec<FileToPut> {
    vec![
        FileToPut {
            path: "key-build".into(),
            data: key.key.clone(),
            mode: 0o600,
        },
        FileToPut {
            path: "key-build.ucert".into(),
            data: key.ucert.clone(),
            mode: 0o600,
        },
    ]
}

/// The reference's per-image sequence: drop any old metadata signature,
/// sign with usign, append the signature to the certificate chain and embed
/// it with fwtool. Image names are positional arguments, never spliced into
/// the script. Like the reference, a failing step does not stop the loop.
pub fn sign_command(bin_dir: &str, images: &[String]) -> Vec<String> {
    let script = format!(
        "export PATH={SIGN_PATH}; cd /builder/{bin_dir} || exit 1; \
         for IMAGE in \"$@\"; do \
         fwtool -t -s /dev/null \"$IMAGE\"; \
         cp {KEY_DIR}/key-build.ucert \"$IMAGE.ucert\" && \
         usign -S -m \"$IMAGE\" -s {KEY_DIR}/key-build -x \"$IMAGE.sig\" && \
         ucert -A -c \"$IMAGE.ucert\" -x \"$IMAGE.sig\" && \
         fwtool -S \"$IMAGE.ucert\" \"$IMAGE\" && echo \"signed $IMAGE\"; \
         done"
    );
    let mut cmd = vec!["sh".to_owned(), "-c".to_owned(), script, "sh".to_owned()];
    cmd.extend(images.iter().cloned());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_readable_pair_signs() {
        assert!(find_build_key(None).is_none());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key-build");
        assert!(find_build_key(Some(&key)).is_none(), "missing key");
        std::fs::write(&key, "secret").unwrap();
        assert!(find_build_key(Some(&key)).is_none(), "missing .ucert");
        std::fs::write(dir.path().join("key-build.ucert"), "cert").unwrap();
        let found = find_build_key(Some(&key)).unwrap();
        assert_eq!(
            (found.key.as_slice(), found.ucert.as_slice()),
            (&b"secret"[..], &b"cert"[..])
        );
    }

    #[test]
    fn sign_command_passes_images_as_arguments() {
        let cmd = sign_command("abc", &["a b.bin".into(), "c.bin".into()]);
        assert_eq!(&cmd[..2], ["sh", "-c"]);
        assert!(cmd[2].contains("cd /builder/abc"));
        assert!(cmd[2].contains("usign -S -m \"$IMAGE\" -s /builder/.asu-sign/key-build"));
        assert!(!cmd[2].contains("a b.bin"));
        assert_eq!(&cmd[3..], ["sh", "a b.bin", "c.bin"]);
    }
}
