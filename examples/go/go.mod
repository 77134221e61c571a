module shivya.dev/example

go 1.22

require shivya.dev/go v0.0.0

replace shivya.dev/go => ../../bindings/go
