//! What the host does beside the guest: the ivshmem inspector (vm-memory),
//! the ivshmem-doorbell server, host commands, and garbage for the ring. Uses [`crate::support`].

pub mod command;
pub mod doorbell;
pub mod ring_fuzz;
pub mod shm;
