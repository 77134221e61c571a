module shivya.dev/loadgen

go 1.22
