//! Where backups come from. Today: MySQL and MariaDB servers.

pub mod mysql;
