//! What the host does beside the guest: the ivshmem inspector (vm-memory),
//! the ivshmem-doorbell server, and host commands. Uses [`crate::support`].

pub mod command;
pub mod doorbell;
pub mod shm;
