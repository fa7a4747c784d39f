//! Real OpenSSH sshd servers on loopback ports (owned by the transport work).
