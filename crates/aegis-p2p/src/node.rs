//! Node runner (to come).
