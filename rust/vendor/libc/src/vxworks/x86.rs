pub type c_char = i8;
pub type wchar_t = i32;
pub type c_long = i32;
pub type c_ulong = u32;
