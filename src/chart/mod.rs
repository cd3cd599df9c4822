//! Charts as people write them: the chart's values read the way helm merges them (`values`),
//! the shape of each image value the `images` input sets (`shape`: one reference string, or a
//! map of registry/repository/tag/digest), where the chart comes from and the run's private helm
//! configuration (`source`: an OCI reference or a classic repository, credentials per host in
//! private files) and its dependencies, built in a copy of the chart (`deps`).

pub mod deps;
pub mod shape;
pub mod source;
pub mod values;

pub use shape::Shape;
