//! The runtime every job shares: how deliveries of one job take turns on its records ([`lease`]).

pub mod lease;
