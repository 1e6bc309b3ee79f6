//! The scheduled poll (filled in below).
