//! What the host does beside the guest: the ivshmem inspector (vm-memory),
//! the ivshmem-doorbell server, host commands, and the far end of the
//! NICs' cables (frames both ways, pcap). Uses [`crate::support`].

pub mod command;
pub mod doorbell;
pub mod net;
pub mod shm;
