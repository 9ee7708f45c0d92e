module toolgate.test/gojson

go 1.19
