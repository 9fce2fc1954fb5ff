//! Size-prefixed frames: every Kafka request and response is a big-endian `i32` length followed by
//! that many bytes. This module validates a declared size against the configured limit *before*
//! anything is buffered, so a hostile 2 GiB prefix costs nothing.

use thiserror::Error;

pub use crate::limits::FRAME_PREFIX_BYTES;

/// Why a declared frame size was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("empty frame")]
    Empty,
}

/// Checks a size prefix read off the wire and returns the body length to read.
pub fn frame_body_len(prefix: [u8; FRAME_PREFIX_BYTES], max_frame_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size == 0 {
        return Err(FrameError::Empty);
    }
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge { size, max: max_frame_bytes });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sizes_within_limit() {
        assert_eq!(frame_body_len(10i32.to_be_bytes(), 100), Ok(10));
        assert_eq!(frame_body_len(100i32.to_be_bytes(), 100), Ok(100));
    }

    #[test]
    fn rejects_oversized_negative_and_empty() {
        assert_eq!(
            frame_body_len(i32::MAX.to_be_bytes(), 100 << 20),
            Err(FrameError::TooLarge { size: i32::MAX as usize, max: 100 << 20 })
        );
        assert_eq!(frame_body_len((-1i32).to_be_bytes(), 100), Err(FrameError::Negative(-1)));
        assert_eq!(frame_body_len(0i32.to_be_bytes(), 100), Err(FrameError::Empty));
    }
}
