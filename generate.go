package main

// The GraphQL layer is generated from schema/*.graphql (see gqlgen.yml).
//go:generate go tool gqlgen generate
