pub mod import;
pub mod plugin;
pub mod policy;
pub mod serve;
pub mod status;
