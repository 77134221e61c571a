module shivya.dev/example

go 1.26.0

require shivya.dev/go v0.0.0

require golang.org/x/sys v0.50.0 // indirect

replace shivya.dev/go => ../../bindings/go
