"""Record (de)serialisation for the command line: the JSON envelope, kcat-style format
strings, Avro, and the line splitting ``produce`` uses. No Kafka client imports here."""
