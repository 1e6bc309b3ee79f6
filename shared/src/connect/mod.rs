//! Atlassian Connect (and "Connect on Forge") authentication: the query string hash that binds a
//! JWT to one request ([`qsh`]), and the HS256 JWTs signed with an installation's shared secret
//! ([`jwt`]). The lifecycle (install, uninstall) and the asymmetric install JWTs build on these.

pub mod jwt;
pub mod qsh;
pub mod session;
