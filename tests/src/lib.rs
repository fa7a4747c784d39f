//! Harnesses for the end-to-end tests: real sshd servers, loop devices, QEMU guests, a real
//! Kubernetes control plane and Velero server, and the
//! built `rookery` / `rookery-agent` binaries. Each harness cleans up in `Drop` and prints the
//! exact commands a human must run if cleanup fails.

pub mod bins;
pub mod cli;
pub mod daemon;
pub mod hungdisk;
pub mod kube;
pub mod loopdev;
pub mod require;
pub mod sshd;
pub mod velero;
pub mod vm;
