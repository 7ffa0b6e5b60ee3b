//! Enforcement you can trust: every way an ordinary operation (a crash and
//! restart, a second daemon, a squatted pin directory, a half-written policy
//! file, a layered agency policy, a forwarding gateway, ...) could open the
//! gates or corrupt the record, each reproduced for real. Needs root: every
//! test makes its own namespaces, veth pairs and pin directory.

mod buckets;
mod files;
mod gateway;
mod ids;
mod layers;
mod lifecycle;
