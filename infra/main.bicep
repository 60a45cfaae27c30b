// The durable orchestrator on Azure Functions Elastic Premium (Linux): monitoring, storage, the
// plan and Function App, the app identity's role assignments and, as options, an IP allowlist
// and private networking. Deploy with scripts/deploy.sh (az deployment group create); settings
// and costs: infra/README.md.

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Function App name, globally unique (<name>.azurewebsites.net). Lowercase letters, digits and hyphens.')
@minLength(2)
@maxLength(60)
param appName string = 'durableorch-${uniqueString(resourceGroup().id)}'

@description('Elastic Premium plan size.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

@description('Always-ready instances (billed around the clock).')
@minValue(1)
@maxValue(20)
param minimumInstances int = 1

@description('Most instances the plan scales out to.')
@minValue(1)
@maxValue(100)
param maximumInstances int = 20

@description('Redundancy of the data storage account (durable state).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param dataStorageSku string = 'Standard_ZRS'

@description('Task hub name: 3-45 lowercase letters and digits, starting with a letter. It names the hub\'s tables, queues and containers, and the engine functions\' queue names (%TaskHub%-control-NN).')
@minLength(3)
@maxLength(45)
param taskHub string = 'durableorchestratorhub'

@description('Workflow and engine settings (see local.settings.json); values are strings, as app settings are.')
param workflowSettings object = {
  SYNC_WORK_DELAY_MS: '1000'
  SYNC_RETRY_FIRST_INTERVAL_MS: '1000'
  CLAIM_APPROVAL_TIMEOUT_SECONDS: '86400'
  ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS: '1000'
  ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT: '2'
  ORDER_PAYMENT_RETRY_MAX_ATTEMPTS: '5'
  ACTIVITY_WORK_DELAY_MS: '0'
  FRAUD_REVIEW_TIMEOUT_SECONDS: '86400'
  DURABLE_RETENTION_SCHEDULE: '0 */5 * * * *'
}

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

param tags object = {
  app: 'durable-orchestrator'
}

@description('Address ranges allowed to call the app, each { name: \'office\', cidr: \'203.0.113.0/24\' } (IPv4 or IPv6 CIDR). Empty: every address reaches the app. Set: only these ranges reach the app and, unless scmSiteOpen, its scm (deployment) site; every other address gets 403.')
param allowedIpRanges array = []

@description('With allowedIpRanges set, leave the scm (Kudu, zip deploy) site open to every address; it still requires Entra ID sign-in.')
param scmSiteOpen bool = false

@description('Private networking: the app joins a virtual network, both storage accounts are reached through private endpoints only, and their public endpoints are closed. Private endpoints and private DNS zones are billed.')
param privateNetworking bool = false

@description('Address space of the virtual network (privateNetworking only).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet delegated to the app\'s VNet integration; /26 or larger, one address per instance.')
param integrationSubnetPrefix string = '10.40.0.0/24'

@description('Subnet holding the storage private endpoints (four addresses).')
param privateEndpointSubnetPrefix string = '10.40.1.0/27'

// Storage account names allow only 3-24 lowercase letters and digits and are globally unique.
var suffix = uniqueString(resourceGroup().id, appName)
// The Azure Files share the app runs from (WEBSITE_CONTENTSHARE).
var contentShareName = toLower(appName)

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    name: appName
    retentionInDays: logRetentionInDays
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    dataAccountName: 'st${suffix}'
    contentAccountName: 'stfs${suffix}'
    dataSku: dataStorageSku
    privateNetworking: privateNetworking
    contentShareName: contentShareName
    tags: tags
  }
}

module privateNetwork 'modules/privatenetwork.bicep' = if (privateNetworking) {
  name: 'privatenetwork'
  params: {
    location: location
    name: appName
    addressPrefix: vnetAddressPrefix
    integrationSubnetPrefix: integrationSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    dataAccountId: storage.outputs.dataAccountId
    contentAccountId: storage.outputs.contentAccountId
    tags: tags
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    appName: appName
    planSku: planSku
    minimumInstances: minimumInstances
    maximumInstances: maximumInstances
    dataAccountName: storage.outputs.dataAccountName
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    contentAccountName: storage.outputs.contentAccountName
    contentShareName: contentShareName
    insightsConnectionString: monitoring.outputs.connectionString
    workerSettings: union(workflowSettings, {
      TaskHub: taskHub
    })
    allowedIpRanges: allowedIpRanges
    scmSiteOpen: scmSiteOpen
    privateNetworking: privateNetworking
    // The site is created once the private endpoints and DNS zones answer: the platform checks
    // the content share when it creates the app.
    integrationSubnetId: privateNetworking ? privateNetwork.outputs.integrationSubnetId : ''
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: functionApp.outputs.principalId
    dataAccountName: storage.outputs.dataAccountName
    insightsName: monitoring.outputs.insightsName
  }
}

var baseUrl = 'https://${functionApp.outputs.hostName}/api'

output appName string = functionApp.outputs.name
output hostName string = functionApp.outputs.hostName
output dataStorageAccount string = storage.outputs.dataAccountName
output principalId string = functionApp.outputs.principalId
// HTTP functions use authLevel function: add ?code=<key> (az functionapp keys list).
output starterUrlTemplate string = '${baseUrl}/orchestrators/{functionName}'
output starterUrls object = {
  ClaimApprovalWorkflow: '${baseUrl}/orchestrators/ClaimApprovalWorkflow'
  OrderWorkflow: '${baseUrl}/orchestrators/OrderWorkflow'
  MedallionPipeline: '${baseUrl}/orchestrators/MedallionPipeline'
}
output instancesUrl string = '${baseUrl}/instances'
