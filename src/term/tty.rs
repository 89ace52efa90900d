//! The terminal device: whether to run the interactive front end, raw mode, and its restoring on
//! every way out (a normal return, an error, a panic, a signal that ends the program, Ctrl-Z),
//! and the window's size.
//!
//! The only part of `term` that does IO. Must not decide what is drawn.
