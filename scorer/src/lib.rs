//! The critic and the symbolic features it reports. (Filled in as the scorer work lands.)
