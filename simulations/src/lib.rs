//! Conclave's fleet simulator. Not built yet: it arrives with the simulation issue (#5).
