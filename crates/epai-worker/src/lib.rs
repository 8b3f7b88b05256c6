//! EPAI's job loop: claims insight jobs from the PostgreSQL queue in the store, runs the engine's
//! models on the partner's data, and writes the resulting insights back through the store.
//!
//! Must not parse requests or know about HTTP; it sees partners only through store handles.
