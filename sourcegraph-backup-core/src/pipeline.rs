//! The pipeline that runs a plan (filled in with the pipeline issue).
