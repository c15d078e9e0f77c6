//! Shared pieces of the test tiers. Each test binary uses a different subset.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_runtime;
pub mod fake_upstream;
pub mod http;
pub mod podman_proxy;
pub mod podman_service;
pub mod reference_store;
pub mod rng;
pub mod testapp;
