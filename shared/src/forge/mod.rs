//! Forge Remote: the Forge app's `invokeRemote` calls and remote triggers reach us with a Forge
//! Invocation Token (verified here), and bring the app system token we call Atlassian with.

pub mod session;
