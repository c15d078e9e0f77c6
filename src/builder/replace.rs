//! Before a build is published over an existing `store/<bin_dir>`: is the
//! old one a complete build with other images? Its only I/O is reading the
//! old directory (`complete::check`), and only when there is one.

use super::BuildJob;
use crate::complete;
use serde_json::{Map, Value};

/// Publishing renames the new build over an existing `store/<bin_dir>`.
/// When that one is a complete build with other images (another server's
/// build of the request on a shared store, or ours from before the database
/// was reset), say so, naming the bin_dir: clients of the other server may
/// be downloading it. Costs a hash of the old images, only when a directory
/// is there.
pub fn warn_if_replacing(job: &BuildJob, result: &Map<String, Value>) {
    if std::fs::symlink_metadata(&job.store_dir).is_err() {
        return;
    }
    let req = &job.request;
    let expect = complete::Expect {
        target: &req.target,
        version: &req.version,
        version_code: &req.version_code,
        profile: &req.profile,
    };
    let existing = match complete::check(&job.store_dir, &expect) {
        Ok(existing) => existing,
        Err(refused) => {
            log::info!(
                "job {}: replacing store/{}, which is not a complete build ({})",
                job.request_hash,
                job.bin_dir,
                refused.reason
            );
            return;
        }
    };
    let new: Vec<complete::Image> = result
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|img| {
            Some(complete::Image {
                name: img.get("name")?.as_str()?.to_owned(),
                sha256: img.get("sha256")?.as_str()?.to_ascii_lowercase(),
            })
        })
        .collect();
    match complete::replaced_image(&existing.images, &new) {
        Some(image) => log::warn!(
            "job {}: replacing the complete build in store/{} with different bytes ({image} \
             differs); a server sharing this store may be serving the old one",
            job.request_hash,
            job.bin_dir
        ),
        None => log::info!(
            "job {}: store/{} already held the same images; replacing it",
            job.request_hash,
            job.bin_dir
        ),
    }
}
