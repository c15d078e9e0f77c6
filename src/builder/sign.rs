//! Optional image signing with a build key, as the reference does: when a
//! usign secret key (`$BUILD_KEY`, else `./key-build`) and its certificate
//! (`<key>.ucert`) exist on the host, the installable images are signed
//! inside the build container with the ImageBuilder's own host tools
//! (fwtool, usign, ucert) before they are copied out.

use crate::container::FileToPut;
use std::path::PathBuf;

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

/// The build key, when both files are readable; `None` means: do not sign.
pub fn find_build_key() -> Option<BuildKey> {
    let path = std::env::var_os("BUILD_KEY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok().map(|d| d.join("key-build")))?;
    if !path.is_file() {
        return None;
    }
    let mut ucert_path = path.clone().into_os_string();
    ucert_path.push(".ucert");
    match (std::fs::read(&path), std::fs::read(&ucert_path)) {
        (Ok(key), Ok(ucert)) => Some(BuildKey { path, key, ucert }),
        _ => {
            log::warn!(
                "build key {} found but it or its .ucert is unreadable; not signing",
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
    fn sign_command_passes_images_as_arguments() {
        let cmd = sign_command("abc", &["a b.bin".into(), "c.bin".into()]);
        assert_eq!(&cmd[..2], ["sh", "-c"]);
        assert!(cmd[2].contains("cd /builder/abc"));
        assert!(cmd[2].contains("usign -S -m \"$IMAGE\" -s /builder/.asu-sign/key-build"));
        assert!(!cmd[2].contains("a b.bin"));
        assert_eq!(&cmd[3..], ["sh", "a b.bin", "c.bin"]);
    }
}
