//! The Graph emulator: a stand-in for Microsoft 365 built from the Graph contract.
