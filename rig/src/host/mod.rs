//! What the host does beside the guest: the ivshmem inspector (vm-memory),
//! the ivshmem-doorbell server, host commands, garbage for the ring, and the
//! far end of the NICs' cables (frames both ways, pcap). Uses [`crate::support`].

pub mod command;
pub mod doorbell;
pub mod frames;
pub mod net;
pub mod pcap;
pub mod ring_fuzz;
pub mod shm;
