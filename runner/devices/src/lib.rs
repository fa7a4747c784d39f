//! Device selection and preparation plans (owned by the device-preparation work, issue 4).
