//! TODO(owner: parser work)
