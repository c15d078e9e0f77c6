//! STUB — replaced by the podman helper's client.
use super::*;
use std::path::{Path, PathBuf};

pub struct Podman {
    socket: PathBuf,
}

impl Podman {
    pub fn new(socket: &Path) -> Podman {
        Podman {
            socket: socket.to_path_buf(),
        }
    }
    fn down<T>(&self) -> Result<T, ContainerError> {
        Err(ContainerError::Unreachable {
            socket: self.socket.display().to_string(),
            reason: "stub".into(),
        })
    }
}

impl ContainerRuntime for Podman {
    fn ping(&self) -> Result<String, ContainerError> {
        self.down()
    }
    fn ensure_image(&self, _: &str) -> Result<ImageOrigin, ContainerError> {
        self.down()
    }
    fn ensure_network(&self, _: &str) -> Result<(), ContainerError> {
        self.down()
    }
    fn create(&self, _: &ContainerSpec) -> Result<String, ContainerError> {
        self.down()
    }
    fn start(&self, _: &str) -> Result<(), ContainerError> {
        self.down()
    }
    fn exec(&self, _: &str, _: &ExecRequest) -> Result<ExecOutput, ContainerError> {
        self.down()
    }
    fn put_files(&self, _: &str, _: &str, _: &[FileToPut]) -> Result<(), ContainerError> {
        self.down()
    }
    fn copy_out(&self, _: &str, _: &str, _: &Path) -> Result<u64, ContainerError> {
        self.down()
    }
    fn kill(&self, _: &str) -> Result<(), ContainerError> {
        self.down()
    }
    fn remove(&self, _: &str) -> Result<(), ContainerError> {
        self.down()
    }
    fn list_by_label(&self, _: &str) -> Result<Vec<ContainerInfo>, ContainerError> {
        self.down()
    }
}
