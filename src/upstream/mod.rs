//! OpenWrt upstream metadata (to be written).
