//! asu-builder: the OpenWrt Attended SysUpgrade API with builds on Podman.
//! See ARCHITECTURE.md for the map of modules and threads.

pub mod adopt;
pub mod allocator;
pub mod allow_list;
pub mod api;
pub mod app;
pub mod builder;
pub mod cli;
pub mod complete;
pub mod config;
pub mod container;
pub mod db;
pub mod descriptors;
pub mod faults;
pub mod hash;
pub mod metrics;
pub mod models;
pub mod queue;
pub mod stats;
pub mod store;
pub mod upstream;
pub mod validate;
