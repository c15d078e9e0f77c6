//! asu-builder: the OpenWrt Attended SysUpgrade API with builds on Podman.
//! See ARCHITECTURE.md for the map of modules and threads.

pub mod api;
pub mod app;
pub mod builder;
pub mod config;
pub mod container;
pub mod db;
pub mod hash;
pub mod metrics;
pub mod models;
pub mod queue;
pub mod stats;
pub mod upstream;
pub mod validate;
