//! Charts as people write them: the chart's values read the way helm merges them (`values`),
//! the shape of each image value the `images` input sets (`shape`: one reference string, or a
//! map of registry/repository/tag/digest), where the chart comes from and how helm reaches it
//! (`source`: a directory, an OCI reference or a classic repository, at a version, with
//! credentials per host in private helm config files) and its dependencies built into a
//! temporary copy (`deps`).

pub mod shape;
pub mod values;

pub use shape::Shape;
