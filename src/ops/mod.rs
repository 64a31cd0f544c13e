//! Operations: health checks and monitoring (`autoland check`, a Nagios/Icinga plugin).

pub mod check;
