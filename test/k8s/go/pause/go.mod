// Wrapper module: the pod sandbox ("pause") binary of the test node's locally built pause image.
module kvstore.test/k8s/pause

go 1.26.0
