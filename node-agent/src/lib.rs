//! rookery-agent: the node side. Speaks rookery-proto over stdin/stdout.

pub mod prepare;
