//! Test support shared by the bed's stand-in programs.
