//! A vector that keeps its first `N` items inline and spills to the heap beyond that.
//!
//! Sessions and private rooms almost always hold one or two entries (a connection's rooms, a
//! user's tabs); keeping those inline saves a heap block per session, which matters when the
//! server holds hundreds of thousands of idle connections.

#[derive(Clone, Debug)]
pub enum InlineVec<T: Copy + Default, const N: usize> {
    Inline { len: u8, items: [T; N] },
    Heap(Vec<T>),
}

impl<T: Copy + Default, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> InlineVec<T, N> {
    pub fn new() -> Self {
        InlineVec::Inline {
            len: 0,
            items: [T::default(); N],
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match self {
            InlineVec::Inline { len, items } => &items[..usize::from(*len)],
            InlineVec::Heap(vec) => vec,
        }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            InlineVec::Inline { len, items } => &mut items[..usize::from(*len)],
            InlineVec::Heap(vec) => vec,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, value: T) {
        match self {
            InlineVec::Inline { len, items }
                if usize::from(*len) < N && N <= usize::from(u8::MAX) =>
            {
                items[usize::from(*len)] = value;
                *len += 1;
            }
            InlineVec::Inline { len, items } => {
                let mut vec = Vec::with_capacity(N * 2);
                vec.extend_from_slice(&items[..usize::from(*len)]);
                vec.push(value);
                *self = InlineVec::Heap(vec);
            }
            InlineVec::Heap(vec) => vec.push(value),
        }
    }

    /// Removes the first item matching `predicate` (order is not kept) and returns it. Moves the
    /// items back inline once they fit again, releasing the heap block.
    pub fn swap_remove_where(&mut self, predicate: impl Fn(&T) -> bool) -> Option<T> {
        let index = self.as_slice().iter().position(predicate)?;
        let slice = self.as_mut_slice();
        let last = slice.len() - 1;
        slice.swap(index, last);
        let removed = slice[last];
        match self {
            InlineVec::Inline { len, .. } => *len -= 1,
            InlineVec::Heap(vec) => {
                vec.pop();
                if vec.len() <= N {
                    let mut items = [T::default(); N];
                    items[..vec.len()].copy_from_slice(vec);
                    let len = vec.len() as u8;
                    *self = InlineVec::Inline { len, items };
                }
            }
        }
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_to_the_heap_and_comes_back() {
        let mut list: InlineVec<u32, 2> = InlineVec::new();
        assert!(list.is_empty());
        list.push(1);
        list.push(2);
        assert!(matches!(list, InlineVec::Inline { .. }));
        list.push(3);
        assert!(matches!(list, InlineVec::Heap(_)));
        assert_eq!(list.as_slice(), &[1, 2, 3]);
        assert_eq!(list.swap_remove_where(|&v| v == 1), Some(1));
        assert!(matches!(list, InlineVec::Inline { .. }));
        let mut rest = list.as_slice().to_vec();
        rest.sort_unstable();
        assert_eq!(rest, vec![2, 3]);
        assert_eq!(list.swap_remove_where(|&v| v == 9), None);
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn mutable_access_reaches_inline_and_heap_items() {
        let mut list: InlineVec<u32, 1> = InlineVec::new();
        list.push(5);
        list.as_mut_slice()[0] = 6;
        list.push(7);
        list.as_mut_slice()[1] = 8;
        assert_eq!(list.as_slice(), &[6, 8]);
    }
}
