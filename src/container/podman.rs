//! Podman client (to be written).
