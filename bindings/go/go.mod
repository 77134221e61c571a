module shivya.dev/go

go 1.22
