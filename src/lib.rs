//! asu-builder: the OpenWrt Attended SysUpgrade API with builds on Podman.

pub mod api;
pub mod builder;
pub mod config;
pub mod container;
pub mod db;
pub mod hash;
pub mod models;
pub mod upstream;
